# A pool of identical nodes: one Neutron port each (fixed IP, security groups), one instance each booted from
# the named image and flavor with cloud-init user data, optionally inside a Blazar reservation.

data "openstack_images_image_v2" "this" {
  name        = var.image_name
  most_recent = true
}

data "openstack_compute_flavor_v2" "this" {
  name = var.flavor_name
}

locals {
  roles = [for i in range(var.node_count) : try(var.roles[i], "processing")]
}

resource "openstack_networking_port_v2" "this" {
  count = var.node_count

  name           = "${var.name}-${count.index}"
  network_id     = var.network_id
  admin_state_up = true
  security_group_ids = concat(
    var.security_group_ids, lookup(var.extra_security_group_ids, tostring(count.index), [])
  )
  no_security_groups = length(var.security_group_ids) == 0 && !contains(keys(var.extra_security_group_ids), tostring(count.index))
  tags               = var.tags

  dynamic "fixed_ip" {
    for_each = var.subnet_id == null ? [] : [var.subnet_id]
    content {
      subnet_id = fixed_ip.value
    }
  }
}

resource "openstack_compute_instance_v2" "this" {
  count = var.node_count

  name              = "${var.name}-${count.index}"
  image_id          = data.openstack_images_image_v2.this.id
  flavor_id         = data.openstack_compute_flavor_v2.this.id
  key_pair          = var.key_pair
  user_data         = var.user_data
  availability_zone = var.availability_zone
  metadata          = merge(var.metadata, { role = local.roles[count.index], pool = var.name, index = tostring(count.index) })
  tags              = var.tags

  network {
    port = openstack_networking_port_v2.this[count.index].id
  }

  dynamic "scheduler_hints" {
    for_each = var.reservation_id == null ? [] : [var.reservation_id]
    content {
      additional_properties = { reservation = scheduler_hints.value }
    }
  }

  lifecycle {
    # Chameleon images are refreshed often: a newer image of the same name must not rebuild running nodes.
    ignore_changes = [image_id]
  }
}
