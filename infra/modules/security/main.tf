# Three groups, default rules removed: "node" on every node (SSH from the admin CIDRs, anything from inside the
# subnet, all egress), "control_plane" on the Kubernetes API node (the API from the admin CIDRs only) and
# "ingress" on the node holding the public API address (HTTP and HTTPS from public_http_cidrs).

locals {
  groups = {
    node          = "SSH from the admin networks, node-to-node traffic inside the subnet, all egress"
    control_plane = "Kubernetes API from the admin networks"
    ingress       = "HTTP(S) to the ingress node"
  }

  # One TCP rule per (group, port, source): keys are stable so adding a CIDR never replaces other rules.
  tcp_rules = merge(
    { for c in var.admin_cidrs : "node-ssh-${c}" => { group = "node", port = 22, cidr = c, what = "SSH" } },
    { for c in var.admin_cidrs : "control-plane-api-${c}" => {
      group = "control_plane", port = var.kubernetes_api_port, cidr = c, what = "Kubernetes API"
    } },
    { for c in var.public_http_cidrs : "ingress-http-${c}" => { group = "ingress", port = 80, cidr = c, what = "HTTP" } },
    { for c in var.public_http_cidrs : "ingress-https-${c}" => { group = "ingress", port = 443, cidr = c, what = "HTTPS" } },
  )
}

resource "openstack_networking_secgroup_v2" "this" {
  for_each = local.groups

  name                 = "${var.name}-${replace(each.key, "_", "-")}"
  description          = each.value
  delete_default_rules = true
  tags                 = var.tags
}

resource "openstack_networking_secgroup_rule_v2" "tcp_ingress" {
  for_each = local.tcp_rules

  description       = "${each.value.what} from ${each.value.cidr}"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
  security_group_id = openstack_networking_secgroup_v2.this[each.value.group].id
}

resource "openstack_networking_secgroup_rule_v2" "internal" {
  for_each = toset(["tcp", "udp", "icmp"])

  description       = "node-to-node ${each.key} inside ${var.internal_cidr}"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = each.key
  remote_ip_prefix  = var.internal_cidr
  security_group_id = openstack_networking_secgroup_v2.this["node"].id
}

resource "openstack_networking_secgroup_rule_v2" "egress" {
  description       = "all IPv4 egress (packages, images, the object store)"
  direction         = "egress"
  ethertype         = "IPv4"
  security_group_id = openstack_networking_secgroup_v2.this["node"].id
}
