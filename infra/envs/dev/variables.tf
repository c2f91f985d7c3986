# Environment dev: small and cheap: the same shape as prod on m1.small nodes with a 20 GB volume.

variable "cloud" {
  description = "clouds.yaml entry of the site running the Kubernetes VMs (Chameleon KVM@TACC)."
  type        = string
  default     = "kvm_tacc"
}

variable "gpu_cloud" {
  description = "clouds.yaml entry of the bare-metal site of the GPU lease (Chameleon CHI@TACC)."
  type        = string
  default     = "chi_tacc"
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH and the Kubernetes API."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.admin_cidrs : try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "admin_cidrs must be IPv4 CIDRs no wider than /8: SSH and the Kubernetes API are never open to the internet."
  }
}

variable "public_http_cidrs" {
  description = "IPv4 CIDRs allowed to reach the public API over HTTP(S)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ssh_public_key" {
  description = "OpenSSH public key of the operators."
  type        = string
}

variable "k8s_node_count" {
  description = "Kubernetes nodes."
  type        = number
  default     = 3
}

variable "k8s_flavor" {
  description = "Flavor of the Kubernetes nodes."
  type        = string
  default     = "m1.small"
}

variable "volume_size_gb" {
  description = "Persistent volume size in GB."
  type        = number
  default     = 20
}

variable "gpu_reservation_id" {
  description = "Blazar reservation id of the active GPU lease (gpu_lease.auto.tfvars.json, written by replayrec infra lease create)."
  type        = string
  default     = null
}
