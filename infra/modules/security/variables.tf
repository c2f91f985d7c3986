variable "name" {
  description = "Name prefix of the security groups."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDRs that may reach SSH and the Kubernetes API (the operators' networks; never the whole internet)."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && !can(regex(":", c))])
    error_message = "admin_cidrs must be a non-empty list of IPv4 CIDRs, e.g. [\"203.0.113.0/24\"]."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "admin_cidrs must not open SSH or the Kubernetes API to the internet (0.0.0.0/0 or any prefix shorter than /8)."
  }
}

variable "internal_cidr" {
  description = "CIDR of the nodes' subnet: all node-to-node traffic inside it is allowed."
  type        = string

  validation {
    condition     = can(cidrhost(var.internal_cidr, 0)) && !can(regex(":", var.internal_cidr))
    error_message = "internal_cidr must be an IPv4 CIDR."
  }
}

variable "public_http_cidrs" {
  description = "IPv4 CIDRs that may reach HTTP(S) on the ingress node (the shop's clients)."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.public_http_cidrs) > 0 && alltrue([for c in var.public_http_cidrs : can(cidrhost(c, 0)) && !can(regex(":", c))])
    error_message = "public_http_cidrs must be a non-empty list of IPv4 CIDRs."
  }
}

variable "kubernetes_api_port" {
  description = "TCP port of the Kubernetes API server (k3s and kubeadm: 6443)."
  type        = number
  default     = 6443

  validation {
    condition     = var.kubernetes_api_port >= 1 && var.kubernetes_api_port <= 65535 && floor(var.kubernetes_api_port) == var.kubernetes_api_port
    error_message = "kubernetes_api_port must be a whole number between 1 and 65535."
  }
}

variable "tags" {
  description = "Tags put on every security group."
  type        = set(string)
  default     = []
}
