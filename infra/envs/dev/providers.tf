# Credentials come from clouds.yaml (OS_CLIENT_CONFIG_FILE or ~/.config/openstack/clouds.yaml) or the OS_*
# environment of an application credential; nothing secret is in this repository.

provider "openstack" {
  cloud = var.cloud
}

provider "openstack" {
  alias = "gpu"
  cloud = var.gpu_cloud
}
