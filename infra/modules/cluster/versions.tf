terraform {
  required_version = ">= 1.9.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.4"
      # openstack: the site of the Kubernetes VMs (KVM@TACC); openstack.gpu: the bare-metal site of the GPU
      # lease (CHI@TACC). Both may point at the same cloud.
      configuration_aliases = [openstack.gpu]
    }
  }
}
