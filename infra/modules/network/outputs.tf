output "network_id" {
  description = "ID of the private network."
  value       = openstack_networking_network_v2.this.id
}

output "subnet_id" {
  description = "ID of the subnet."
  value       = openstack_networking_subnet_v2.this.id
}

output "cidr" {
  description = "CIDR of the subnet (node-to-node traffic is allowed inside it)."
  value       = openstack_networking_subnet_v2.this.cidr
}

output "router_id" {
  description = "ID of the router."
  value       = openstack_networking_router_v2.this.id
}

output "external_network_id" {
  description = "ID of the external network the router uplinks to."
  value       = data.openstack_networking_network_v2.external.id
}
