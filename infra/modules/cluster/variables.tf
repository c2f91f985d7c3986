variable "name" {
  description = "Environment name prefix for every resource, e.g. replayrec-prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs of the operators: the only sources allowed to reach SSH and the Kubernetes API."
  type        = list(string)
}

variable "public_http_cidrs" {
  description = "IPv4 CIDRs allowed to reach HTTP(S) on the ingress node."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "network_cidr" {
  description = "CIDR of the cluster's private subnet."
  type        = string
  default     = "10.20.0.0/24"
}

variable "external_network_name" {
  description = "External network for the router and the floating IPs (Chameleon: public)."
  type        = string
  default     = "public"
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for the login user on every node (the private key never enters Terraform)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.ssh_public_key)))
    error_message = "ssh_public_key must be an OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "login_user" {
  description = "Login user of the images (Chameleon's CC-* images: cc)."
  type        = string
  default     = "cc"
}

variable "k8s_node_count" {
  description = "Kubernetes nodes (at least 2: the admin and the public address sit on different nodes)."
  type        = number
  default     = 3

  validation {
    condition     = var.k8s_node_count >= 2 && var.k8s_node_count <= 20 && floor(var.k8s_node_count) == var.k8s_node_count
    error_message = "k8s_node_count must be a whole number between 2 and 20."
  }
}

variable "k8s_roles" {
  description = "Role per Kubernetes node by index; nodes beyond the list are processing nodes."
  type        = list(string)
  default     = ["ingest", "processing", "serving"]
}

variable "k8s_flavor" {
  description = "Flavor of the Kubernetes nodes."
  type        = string
  default     = "m1.medium"
}

variable "image_name" {
  description = "Image of the Kubernetes nodes."
  type        = string
  default     = "CC-Ubuntu22.04"
}

variable "volume_size_gb" {
  description = "Persistent volume size in GB."
  type        = number
  default     = 100
}

variable "storage_node_index" {
  description = "Index of the Kubernetes node the persistent volume is attached to."
  type        = number
  default     = 1

  validation {
    condition     = var.storage_node_index >= 0 && var.storage_node_index < var.k8s_node_count && floor(var.storage_node_index) == var.storage_node_index
    error_message = "storage_node_index must be the index of one of the k8s_node_count Kubernetes nodes."
  }
}

variable "gpu_reservation_id" {
  description = "Blazar reservation id of today's GPU lease (replayrec infra lease create writes it); null: no GPU node."
  type        = string
  default     = null
}

variable "gpu_flavor" {
  description = "Flavor of the reserved GPU host (Chameleon bare metal: baremetal; the node type is in the lease)."
  type        = string
  default     = "baremetal"
}

variable "gpu_image_name" {
  description = "Image of the GPU node (the GPU drivers come from Ansible)."
  type        = string
  default     = "CC-Ubuntu22.04"
}

variable "gpu_network_name" {
  description = "Existing network of the GPU site the GPU node joins (Chameleon bare metal: sharednet1)."
  type        = string
  default     = "sharednet1"
}

variable "gpu_floating_ip" {
  description = "Give the GPU node a floating IP on its own site (needed to reach it from another site)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags put on the resources that take them."
  type        = set(string)
  default     = []
}
