mock_provider "openstack" {
  mock_data "openstack_networking_network_v2" {
    defaults = {
      id = "0a1b2c3d-0000-4000-8000-00000000e0e0"
    }
  }
}

variables {
  name = "replayrec-test"
  cidr = "10.20.0.0/24"
}

run "plans_one_network_subnet_and_uplinked_router" {
  command = plan

  assert {
    condition     = openstack_networking_network_v2.this.name == "replayrec-test"
    error_message = "the network is named after var.name"
  }
  assert {
    condition     = openstack_networking_subnet_v2.this.cidr == "10.20.0.0/24" && openstack_networking_subnet_v2.this.ip_version == 4
    error_message = "the subnet carries var.cidr as IPv4"
  }
  assert {
    condition     = openstack_networking_router_v2.this.external_network_id == "0a1b2c3d-0000-4000-8000-00000000e0e0"
    error_message = "the router uplinks to the external network looked up by name"
  }
  assert {
    condition     = data.openstack_networking_network_v2.external.name == "public" && data.openstack_networking_network_v2.external.external == true
    error_message = "the external network defaults to Chameleon's public network"
  }
}

run "outputs_after_apply" {
  assert {
    condition     = output.cidr == "10.20.0.0/24"
    error_message = "the cidr output is the subnet's"
  }
  assert {
    condition     = output.subnet_id == openstack_networking_subnet_v2.this.id && output.network_id == openstack_networking_network_v2.this.id
    error_message = "the id outputs point at the created resources"
  }
  assert {
    condition     = openstack_networking_router_interface_v2.this.subnet_id == openstack_networking_subnet_v2.this.id
    error_message = "the router interface joins the subnet"
  }
}

run "rejects_a_public_sized_cidr" {
  command = plan
  variables {
    cidr = "10.0.0.0/8"
  }
  expect_failures = [var.cidr]
}

run "rejects_an_ipv6_cidr" {
  command = plan
  variables {
    cidr = "fd00::/64"
  }
  expect_failures = [var.cidr]
}

run "rejects_a_bad_name" {
  command = plan
  variables {
    name = "Replayrec_Test"
  }
  expect_failures = [var.name]
}

run "rejects_bad_dns_servers" {
  command = plan
  variables {
    dns_nameservers = ["dns.example.org"]
  }
  expect_failures = [var.dns_nameservers]
}

run "rejects_an_empty_external_network" {
  command = plan
  variables {
    external_network_name = " "
  }
  expect_failures = [var.external_network_name]
}
