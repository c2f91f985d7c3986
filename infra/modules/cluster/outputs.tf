locals {
  admin_ip = module.public_ips.addresses["admin"]
  api_ip   = module.public_ips.addresses["api"]
  gpu_ip   = try(module.gpu_ip[0].addresses["gpu"], null)
  jump     = "-o ProxyJump=${var.login_user}@${local.admin_ip}"

  # Every host with the variables Ansible needs; the control-plane node is reached on the admin address and is
  # the SSH jump host for the other Kubernetes nodes (they have no public address).
  hosts = merge(
    { for i, n in module.k8s.nodes : n.name => {
      ansible_host            = i == 0 ? local.admin_ip : n.private_ip
      ansible_ssh_common_args = i == 0 ? "" : local.jump
      private_ip              = n.private_ip
      node_role               = n.role
    } },
    { for n in module.gpu.nodes : n.name => {
      ansible_host            = coalesce(local.gpu_ip, n.private_ip)
      ansible_ssh_common_args = ""
      private_ip              = n.private_ip
      node_role               = n.role
    } },
  )
  k8s_names = [for n in module.k8s.nodes : n.name]
  by_role   = { for role in ["ingest", "processing", "serving", "training"] : role => [for name, h in local.hosts : name if h.node_role == role] }

  inventory = {
    all = {
      hosts = local.hosts
      vars = {
        ansible_user            = var.login_user
        replayrec_environment   = var.name
        kubernetes_api_endpoint = "https://${local.admin_ip}:6443"
        public_api_address      = local.api_ip
        data_volume_host        = local.k8s_names[var.storage_node_index]
        data_volume_device      = module.data_volume.device
      }
      children = {
        k8s_control_plane = { hosts = { (local.k8s_names[0]) = {} } }
        k8s_workers       = { hosts = { for name in slice(local.k8s_names, 1, length(local.k8s_names)) : name => {} } }
        ingress           = { hosts = { (local.k8s_names[local.ingress_index]) = {} } }
        storage           = { hosts = { (local.k8s_names[var.storage_node_index]) = {} } }
        ingest            = { hosts = { for name in local.by_role["ingest"] : name => {} } }
        processing        = { hosts = { for name in local.by_role["processing"] : name => {} } }
        serving           = { hosts = { for name in local.by_role["serving"] : name => {} } }
        gpu               = { hosts = { for name in local.by_role["training"] : name => {} } }
      }
    }
  }
}

output "ansible_inventory" {
  description = "Ansible YAML inventory (as an object): hosts with addresses and roles, groups per role."
  value       = local.inventory
}

output "public_addresses" {
  description = "The two public addresses: admin (SSH jump host, Kubernetes API) and api (the shop's clients)."
  value       = module.public_ips.addresses
}

output "nodes" {
  description = "Every node with its role and private address."
  value       = concat(module.k8s.nodes, module.gpu.nodes)
}

output "gpu_node" {
  description = "The GPU node (name, address) while a lease is active, else null."
  value       = local.gpu_count == 0 ? null : { name = module.gpu.nodes[0].name, address = local.hosts[module.gpu.nodes[0].name].ansible_host }
}

output "data_volume" {
  description = "The persistent volume: id, size and the node it is attached to."
  value = {
    id      = module.data_volume.volume_id
    size_gb = module.data_volume.size_gb
    node    = local.k8s_names[var.storage_node_index]
  }
}

output "security" {
  description = "TCP ports open from outside the subnet, with their sources."
  value       = module.security.open_ports
}

output "footprint" {
  description = "What the environment holds, known at plan time: node counts and flavors, volume size, public addresses."
  value = {
    k8s_nodes    = var.k8s_node_count
    k8s_flavor   = var.k8s_flavor
    k8s_roles    = tolist([for n in module.k8s.nodes : n.role])
    gpu_nodes    = local.gpu_count
    volume_gb    = module.data_volume.size_gb
    floating_ips = sort(concat(keys(module.public_ips.addresses), [for m in module.gpu_ip : "gpu"]))
  }
}
