# Run once per project: the object-store container for the environments' remote state.

variable "cloud" {
  description = "clouds.yaml entry of the site whose object store holds the state (Chameleon CHI@TACC)."
  type        = string
  default     = "chi_tacc"
}

variable "bucket" {
  description = "Container name; must match bucket in envs/*/backend.hcl."
  type        = string
  default     = "replayrec-tfstate"
}

provider "openstack" {
  cloud = var.cloud
}

module "state" {
  source = "../../modules/state_bucket"
  name   = var.bucket
}

output "bucket" {
  description = "The state container."
  value       = module.state.name
}
