mock_provider "openstack" {
  mock_resource "openstack_networking_floatingip_v2" {
    defaults = {
      address = "129.114.0.10"
    }
  }
}

variables {
  name        = "replayrec-test"
  pool        = "public"
  assignments = { admin = "port-0", api = "port-2" }
}

run "one_address_per_purpose_associated_with_its_port" {
  command = plan

  assert {
    condition     = length(openstack_networking_floatingip_v2.this) == 2 && alltrue([for f in openstack_networking_floatingip_v2.this : f.pool == "public"])
    error_message = "two floating IPs from the public pool"
  }
  assert {
    condition     = openstack_networking_floatingip_associate_v2.this["api"].port_id == "port-2" && openstack_networking_floatingip_associate_v2.this["admin"].port_id == "port-0"
    error_message = "each address is associated with its port"
  }
}

run "outputs_after_apply" {
  assert {
    condition     = output.addresses == { admin = "129.114.0.10", api = "129.114.0.10" }
    error_message = "addresses are reported by purpose"
  }
}

run "rejects_no_assignment" {
  command = plan
  variables {
    assignments = {}
  }
  expect_failures = [var.assignments]
}

run "rejects_a_bad_purpose_name" {
  command = plan
  variables {
    assignments = { "Public API" = "port-2" }
  }
  expect_failures = [var.assignments]
}

run "rejects_an_empty_pool" {
  command = plan
  variables {
    pool = ""
  }
  expect_failures = [var.pool]
}
