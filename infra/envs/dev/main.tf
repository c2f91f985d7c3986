module "replayrec" {
  source = "../../modules/cluster"
  providers = {
    openstack     = openstack
    openstack.gpu = openstack.gpu
  }

  name               = "replayrec-dev"
  admin_cidrs        = var.admin_cidrs
  public_http_cidrs  = var.public_http_cidrs
  ssh_public_key     = var.ssh_public_key
  k8s_node_count     = var.k8s_node_count
  k8s_flavor         = var.k8s_flavor
  volume_size_gb     = var.volume_size_gb
  gpu_reservation_id = var.gpu_reservation_id
  tags               = ["replayrec", "env-dev"]
}
