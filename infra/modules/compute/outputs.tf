output "nodes" {
  description = "Every node: name, instance id, role, flavor, Blazar reservation, port id and private IPv4 address."
  value = [for i in range(var.node_count) : {
    name        = openstack_compute_instance_v2.this[i].name
    id          = openstack_compute_instance_v2.this[i].id
    role        = local.roles[i]
    flavor      = var.flavor_name
    reservation = var.reservation_id
    port_id     = openstack_networking_port_v2.this[i].id
    private_ip  = try(openstack_networking_port_v2.this[i].all_fixed_ips[0], null)
  }]
}

output "instance_ids" {
  description = "Instance ids in index order."
  value       = openstack_compute_instance_v2.this[*].id
}

output "port_ids" {
  description = "Port ids in index order (floating IPs attach to these)."
  value       = openstack_networking_port_v2.this[*].id
}
