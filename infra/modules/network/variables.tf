variable "name" {
  description = "Name prefix of the network, its subnet and router (lower case, digits and dashes)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "cidr" {
  description = "IPv4 CIDR of the subnet the nodes live on (a private range, /16 to /28)."
  type        = string

  validation {
    condition = (
      can(cidrhost(var.cidr, 0)) && !can(regex(":", var.cidr)) &&
      try(tonumber(split("/", var.cidr)[1]) >= 16 && tonumber(split("/", var.cidr)[1]) <= 28, false)
    )
    error_message = "cidr must be an IPv4 CIDR with a prefix length between 16 and 28, e.g. 10.20.0.0/24."
  }
}

variable "dns_nameservers" {
  description = "DNS servers handed out by the subnet's DHCP."
  type        = list(string)
  default     = ["8.8.8.8", "8.8.4.4"]

  validation {
    condition     = alltrue([for ip in var.dns_nameservers : can(cidrhost("${ip}/32", 0))])
    error_message = "dns_nameservers must be IPv4 addresses."
  }
}

variable "external_network_name" {
  description = "The provider network the router uplinks to (Chameleon's is \"public\")."
  type        = string
  default     = "public"

  validation {
    condition     = length(trimspace(var.external_network_name)) > 0
    error_message = "external_network_name must not be empty."
  }
}

variable "tags" {
  description = "Tags put on every resource of the module."
  type        = set(string)
  default     = []
}
