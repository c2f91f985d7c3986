variable "pool" {
  description = "External network the addresses come from (Chameleon's is \"public\")."
  type        = string

  validation {
    condition     = length(trimspace(var.pool)) > 0
    error_message = "pool must name the external network."
  }
}

variable "assignments" {
  description = "One floating IP per entry: purpose (e.g. api, admin) => the port it is associated with."
  type        = map(string)

  validation {
    condition     = length(var.assignments) >= 1 && length(var.assignments) <= 8
    error_message = "assignments must have between 1 and 8 entries (the project's allocation is 2)."
  }

  validation {
    condition     = alltrue([for k in keys(var.assignments) : can(regex("^[a-z][a-z0-9-]{0,20}$", k))])
    error_message = "assignment names must be lower case (letters, digits, dashes), e.g. api or admin."
  }
}

variable "name" {
  description = "Prefix of the addresses' descriptions."
  type        = string
}

variable "tags" {
  description = "Tags put on every floating IP."
  type        = set(string)
  default     = []
}
