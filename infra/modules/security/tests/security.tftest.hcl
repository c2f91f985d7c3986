mock_provider "openstack" {}

variables {
  name          = "replayrec-test"
  admin_cidrs   = ["203.0.113.0/24", "198.51.100.7/32"]
  internal_cidr = "10.20.0.0/24"
}

run "ssh_and_kubernetes_api_only_from_the_admin_cidrs" {
  command = plan

  assert {
    condition = alltrue([
      for r in openstack_networking_secgroup_rule_v2.tcp_ingress : contains(var.admin_cidrs, r.remote_ip_prefix)
      if contains([22, 6443], r.port_range_min)
    ])
    error_message = "SSH and the Kubernetes API are open to the admin CIDRs only"
  }
  assert {
    condition = length([
      for r in openstack_networking_secgroup_rule_v2.tcp_ingress : r if r.remote_ip_prefix == "0.0.0.0/0" && contains([22, 6443], r.port_range_min)
    ]) == 0
    error_message = "no 0.0.0.0/0 on SSH or the Kubernetes API"
  }
  assert {
    condition     = length([for r in openstack_networking_secgroup_rule_v2.tcp_ingress : r if r.port_range_min == 22]) == 2
    error_message = "one SSH rule per admin CIDR"
  }
  assert {
    condition     = length([for r in openstack_networking_secgroup_rule_v2.tcp_ingress : r if r.port_range_min == 6443]) == 2
    error_message = "one Kubernetes API rule per admin CIDR"
  }
}

run "http_only_on_the_ingress_group_and_defaults_removed" {
  command = plan

  assert {
    condition     = length(openstack_networking_secgroup_v2.this) == 3 && alltrue([for g in openstack_networking_secgroup_v2.this : g.delete_default_rules])
    error_message = "three groups, each without the cloud's default rules"
  }
  assert {
    condition = alltrue([
      for k, r in openstack_networking_secgroup_rule_v2.tcp_ingress : startswith(k, "ingress-") if contains([80, 443], r.port_range_min)
    ])
    error_message = "HTTP(S) rules belong to the ingress group only"
  }
  assert {
    condition     = length([for r in openstack_networking_secgroup_rule_v2.tcp_ingress : r if contains([80, 443], r.port_range_min)]) == 2
    error_message = "HTTP and HTTPS, once each for the default public CIDR"
  }
  assert {
    condition     = alltrue([for r in openstack_networking_secgroup_rule_v2.internal : r.remote_ip_prefix == "10.20.0.0/24"])
    error_message = "node-to-node rules are limited to the subnet"
  }
  assert {
    condition     = length(openstack_networking_secgroup_rule_v2.tcp_ingress) == 6
    error_message = "2 SSH + 2 API + HTTP + HTTPS = 6 TCP ingress rules"
  }
}

run "open_ports_output" {
  assert {
    condition     = length(output.open_ports) == 6 && contains([for p in output.open_ports : p.port], 6443)
    error_message = "open_ports lists every externally reachable port"
  }
  assert {
    condition     = output.node_group_id == openstack_networking_secgroup_v2.this["node"].id
    error_message = "node_group_id is the node group's"
  }
}

run "rejects_ssh_from_the_internet" {
  command = plan
  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "rejects_a_short_admin_prefix" {
  command = plan
  variables {
    admin_cidrs = ["128.0.0.0/1"]
  }
  expect_failures = [var.admin_cidrs]
}

run "rejects_no_admin_cidr" {
  command = plan
  variables {
    admin_cidrs = []
  }
  expect_failures = [var.admin_cidrs]
}

run "rejects_a_malformed_cidr" {
  command = plan
  variables {
    admin_cidrs = ["203.0.113.300/24"]
  }
  expect_failures = [var.admin_cidrs]
}

run "rejects_a_bad_internal_cidr" {
  command = plan
  variables {
    internal_cidr = "subnet"
  }
  expect_failures = [var.internal_cidr]
}

run "rejects_bad_public_cidrs" {
  command = plan
  variables {
    public_http_cidrs = ["::/0"]
  }
  expect_failures = [var.public_http_cidrs]
}

run "rejects_a_bad_api_port" {
  command = plan
  variables {
    kubernetes_api_port = 70000
  }
  expect_failures = [var.kubernetes_api_port]
}

run "rejects_a_bad_name" {
  command = plan
  variables {
    name = "x"
  }
  expect_failures = [var.name]
}
