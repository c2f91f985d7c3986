variable "name" {
  description = "Pool name: nodes are called <name>-<index>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "node_count" {
  description = "Number of nodes in the pool (0 keeps the pool empty, e.g. the GPU pool outside its lease)."
  type        = number

  validation {
    condition     = var.node_count >= 0 && var.node_count <= 20 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number between 0 and 20."
  }
}

variable "roles" {
  description = "Role of each node, by index (ingest, processing, serving, training); the inventory groups hosts by it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.roles : contains(["ingest", "processing", "serving", "training"], r)])
    error_message = "roles may only contain ingest, processing, serving and training."
  }
}

variable "flavor_name" {
  description = "Flavor of every node (e.g. m1.medium on KVM@TACC; baremetal for a reserved Chameleon host)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{0,62}$", var.flavor_name))
    error_message = "flavor_name must be a flavor name such as m1.medium (lower case, digits, dots, dashes, underscores)."
  }
}

variable "image_name" {
  description = "Glance image name (the most recent image of that name is used), e.g. CC-Ubuntu22.04."
  type        = string

  validation {
    condition     = length(trimspace(var.image_name)) > 0
    error_message = "image_name must not be empty."
  }
}

variable "key_pair" {
  description = "Name of the Nova key pair installed for the login user."
  type        = string

  validation {
    condition     = length(trimspace(var.key_pair)) > 0
    error_message = "key_pair must name a key pair."
  }
}

variable "network_id" {
  description = "Network the nodes' ports are on."
  type        = string
}

variable "subnet_id" {
  description = "Subnet for the ports' fixed IPs (null: let Neutron pick one on the network)."
  type        = string
  default     = null
}

variable "security_group_ids" {
  description = "Security groups on every port (empty with port_security false: a bare-metal shared network)."
  type        = list(string)
  default     = []
}

variable "extra_security_group_ids" {
  description = "Extra security groups per node index (e.g. the control-plane or ingress group on one node)."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_security_group_ids) : can(tonumber(k))])
    error_message = "extra_security_group_ids keys must be node indexes (\"0\", \"1\", ...)."
  }
}

variable "user_data" {
  description = "cloud-init user data for every node (must start with #cloud-config), or null."
  type        = string
  default     = null

  validation {
    condition     = var.user_data == null || startswith(coalesce(var.user_data, "#cloud-config"), "#cloud-config")
    error_message = "user_data must be a cloud-config document starting with #cloud-config."
  }
}

variable "reservation_id" {
  description = "Blazar reservation id (a UUID) the nodes are scheduled into (scheduler hint \"reservation\"), or null."
  type        = string
  default     = null

  validation {
    condition     = var.reservation_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", coalesce(var.reservation_id, "x")))
    error_message = "reservation_id must be a Blazar reservation UUID (replayrec infra lease create prints it), or null."
  }
}

variable "availability_zone" {
  description = "Availability zone, or null for the cloud's default."
  type        = string
  default     = null
}

variable "metadata" {
  description = "Nova metadata put on every node (the role and index are added)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags put on every port and instance."
  type        = set(string)
  default     = []
}
