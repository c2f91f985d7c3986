# Floating IPs by purpose, each associated with one port.

resource "openstack_networking_floatingip_v2" "this" {
  for_each = var.assignments

  pool        = var.pool
  description = "${var.name} ${each.key}"
  tags        = var.tags
}

resource "openstack_networking_floatingip_associate_v2" "this" {
  for_each = var.assignments

  floating_ip = openstack_networking_floatingip_v2.this[each.key].address
  port_id     = each.value
}
