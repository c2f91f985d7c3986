variable "name" {
  description = "Name of the object-store container holding Terraform state."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid bucket name: 3-63 characters of lower-case letters, digits, dots and dashes."
  }
}
