# The whole replayrec footprint on Chameleon: a private network, three security groups, the Kubernetes node
# pool (ingest, processing, serving), the persistent volume, the two public addresses (admin on the control-plane
# node, api on the ingress node) and, while a GPU lease is active, the reserved GPU node on its own site.

locals {
  ingress_index = var.k8s_node_count - 1 # the serving node holds the public API address
  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    environment = var.name
    pool        = "k8s"
  })
  gpu_user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    environment = var.name
    pool        = "gpu"
  })
  gpu_count = var.gpu_reservation_id == null ? 0 : 1
}

resource "openstack_compute_keypair_v2" "this" {
  name       = var.name
  public_key = trimspace(var.ssh_public_key)
}

module "network" {
  source = "../network"

  name                  = var.name
  cidr                  = var.network_cidr
  external_network_name = var.external_network_name
  tags                  = var.tags
}

module "security" {
  source = "../security"

  name              = var.name
  admin_cidrs       = var.admin_cidrs
  public_http_cidrs = var.public_http_cidrs
  internal_cidr     = module.network.cidr
  tags              = var.tags
}

module "k8s" {
  source = "../compute"

  name               = "${var.name}-k8s"
  node_count         = var.k8s_node_count
  roles              = var.k8s_roles
  flavor_name        = var.k8s_flavor
  image_name         = var.image_name
  key_pair           = openstack_compute_keypair_v2.this.name
  network_id         = module.network.network_id
  subnet_id          = module.network.subnet_id
  security_group_ids = [module.security.node_group_id]
  extra_security_group_ids = {
    "0"                             = [module.security.control_plane_group_id]
    (tostring(local.ingress_index)) = [module.security.ingress_group_id]
  }
  user_data = local.user_data
  metadata  = { environment = var.name }
  tags      = var.tags

  depends_on = [module.network] # the router interface must exist before nodes boot and fetch packages
}

module "data_volume" {
  source = "../storage"

  name        = "${var.name}-data"
  size_gb     = var.volume_size_gb
  instance_id = module.k8s.instance_ids[var.storage_node_index]
  metadata    = { environment = var.name }
}

module "public_ips" {
  source = "../floating_ip"

  name = var.name
  pool = var.external_network_name
  assignments = {
    admin = module.k8s.port_ids[0]
    api   = module.k8s.port_ids[local.ingress_index]
  }
  tags = var.tags
}

# --- the GPU node: only while a Blazar lease is active, on the lease's (bare-metal) site -------------------

resource "openstack_compute_keypair_v2" "gpu" {
  count    = local.gpu_count
  provider = openstack.gpu

  name       = "${var.name}-gpu"
  public_key = trimspace(var.ssh_public_key)
}

data "openstack_networking_network_v2" "gpu" {
  count    = local.gpu_count
  provider = openstack.gpu

  name = var.gpu_network_name
}

module "gpu" {
  source    = "../compute"
  providers = { openstack = openstack.gpu }

  name           = "${var.name}-gpu"
  node_count     = local.gpu_count
  roles          = ["training"]
  flavor_name    = var.gpu_flavor
  image_name     = var.gpu_image_name
  key_pair       = try(openstack_compute_keypair_v2.gpu[0].name, "${var.name}-gpu")
  network_id     = try(data.openstack_networking_network_v2.gpu[0].id, "")
  reservation_id = var.gpu_reservation_id
  user_data      = local.gpu_user_data
  metadata       = { environment = var.name }
  tags           = var.tags
}

module "gpu_ip" {
  count     = local.gpu_count == 1 && var.gpu_floating_ip ? 1 : 0
  source    = "../floating_ip"
  providers = { openstack = openstack.gpu }

  name        = "${var.name}-gpu"
  pool        = var.external_network_name
  assignments = { gpu = module.gpu.port_ids[0] }
  tags        = var.tags
}
