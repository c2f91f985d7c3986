variable "name" {
  description = "Volume name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "size_gb" {
  description = "Volume size in GB (data, checkpoints, embeddings, cached results)."
  type        = number
  default     = 100

  validation {
    condition     = var.size_gb >= 1 && var.size_gb <= 16384 && floor(var.size_gb) == var.size_gb
    error_message = "size_gb must be a whole number of GB between 1 and 16384."
  }
}

variable "volume_type" {
  description = "Cinder volume type, or null for the cloud's default."
  type        = string
  default     = null
}

variable "availability_zone" {
  description = "Availability zone of the volume, or null for the cloud's default (must match the instance's for attachment)."
  type        = string
  default     = null
}

variable "attach" {
  description = "Attach the volume to instance_id (a plain flag: the instance id is only known after apply)."
  type        = bool
  default     = true
}

variable "instance_id" {
  description = "Instance the volume is attached to (required when attach is true)."
  type        = string
  default     = null

  validation {
    condition     = !var.attach || var.instance_id != null
    error_message = "instance_id is required when attach is true (set attach = false for a detached volume)."
  }
}

variable "metadata" {
  description = "Cinder metadata on the volume."
  type        = map(string)
  default     = {}
}
