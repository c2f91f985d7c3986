output "addresses" {
  description = "Purpose => public IPv4 address."
  value       = { for k, fip in openstack_networking_floatingip_v2.this : k => fip.address }
}
