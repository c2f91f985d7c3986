output "node_group_id" {
  description = "Security group for every node."
  value       = openstack_networking_secgroup_v2.this["node"].id
}

output "control_plane_group_id" {
  description = "Security group for the Kubernetes API node."
  value       = openstack_networking_secgroup_v2.this["control_plane"].id
}

output "ingress_group_id" {
  description = "Security group for the node holding the public API address."
  value       = openstack_networking_secgroup_v2.this["ingress"].id
}

output "open_ports" {
  description = "Every TCP port opened from outside the subnet, with its source CIDR and group (for review and tests)."
  value = [for k in sort(keys(local.tcp_rules)) : {
    group = local.tcp_rules[k].group
    port  = local.tcp_rules[k].port
    cidr  = local.tcp_rules[k].cidr
  }]
}
