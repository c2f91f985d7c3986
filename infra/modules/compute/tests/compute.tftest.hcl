mock_provider "openstack" {
  mock_data "openstack_images_image_v2" {
    defaults = {
      id = "11111111-2222-4333-8444-555555555555"
    }
  }
  mock_data "openstack_compute_flavor_v2" {
    defaults = {
      id = "m1.medium-id"
    }
  }
  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["10.20.0.11"]
    }
  }
}

variables {
  name               = "replayrec-k8s"
  node_count         = 3
  roles              = ["ingest", "processing", "serving"]
  flavor_name        = "m1.medium"
  image_name         = "CC-Ubuntu22.04"
  key_pair           = "replayrec"
  network_id         = "net-id"
  subnet_id          = "subnet-id"
  security_group_ids = ["sg-node"]
  extra_security_group_ids = {
    "0" = ["sg-control-plane"]
  }
  user_data = "#cloud-config\npackages: [python3]\n"
}

run "one_port_and_one_instance_per_node" {
  command = plan

  assert {
    condition     = length(openstack_compute_instance_v2.this) == 3 && length(openstack_networking_port_v2.this) == 3
    error_message = "node_count instances, each with its own port"
  }
  assert {
    condition     = [for i in openstack_compute_instance_v2.this : i.name] == ["replayrec-k8s-0", "replayrec-k8s-1", "replayrec-k8s-2"]
    error_message = "nodes are named <pool>-<index>"
  }
  assert {
    condition     = alltrue([for i in openstack_compute_instance_v2.this : i.flavor_id == "m1.medium-id" && i.image_id == "11111111-2222-4333-8444-555555555555"])
    error_message = "flavor and image come from the data sources looked up by name"
  }
  assert {
    condition     = [for i in openstack_compute_instance_v2.this : i.metadata["role"]] == ["ingest", "processing", "serving"]
    error_message = "each node carries its role in its metadata"
  }
  assert {
    condition     = alltrue([for i in openstack_compute_instance_v2.this : length(i.scheduler_hints) == 0])
    error_message = "no scheduler hint without a reservation"
  }
  assert {
    condition     = openstack_networking_port_v2.this[0].security_group_ids == toset(["sg-node", "sg-control-plane"]) && openstack_networking_port_v2.this[1].security_group_ids == toset(["sg-node"])
    error_message = "extra groups go on their node index only"
  }
  assert {
    condition     = alltrue([for p in openstack_networking_port_v2.this : one(p.fixed_ip).subnet_id == "subnet-id"])
    error_message = "ports take their fixed IP from the subnet"
  }
  assert {
    condition     = alltrue([for i in openstack_compute_instance_v2.this : startswith(i.user_data, "#cloud-config")])
    error_message = "cloud-init user data is passed to every node"
  }
}

run "reservation_goes_into_the_scheduler_hints" {
  command = plan
  variables {
    node_count     = 1
    roles          = ["training"]
    flavor_name    = "baremetal"
    reservation_id = "2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"
  }

  assert {
    condition     = one(openstack_compute_instance_v2.this[0].scheduler_hints).additional_properties["reservation"] == "2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"
    error_message = "the Blazar reservation id is the instance's reservation scheduler hint"
  }
}

run "empty_pool" {
  command = plan
  variables {
    node_count = 0
  }
  assert {
    condition     = length(openstack_compute_instance_v2.this) == 0 && length(output.nodes) == 0
    error_message = "node_count 0 plans nothing"
  }
}

run "outputs_after_apply" {
  assert {
    condition     = [for n in output.nodes : n.private_ip] == ["10.20.0.11", "10.20.0.11", "10.20.0.11"]
    error_message = "each node reports its port's first fixed IP"
  }
  assert {
    condition     = output.port_ids == openstack_networking_port_v2.this[*].id && output.nodes[2].role == "serving"
    error_message = "ports and roles are reported in index order"
  }
}

run "rejects_a_negative_count" {
  command = plan
  variables {
    node_count = -1
  }
  expect_failures = [var.node_count]
}

run "rejects_a_fractional_count" {
  command = plan
  variables {
    node_count = 1.5
  }
  expect_failures = [var.node_count]
}

run "rejects_an_unknown_role" {
  command = plan
  variables {
    roles = ["database"]
  }
  expect_failures = [var.roles]
}

run "rejects_a_bad_flavor_name" {
  command = plan
  variables {
    flavor_name = "M1 Medium"
  }
  expect_failures = [var.flavor_name]
}

run "rejects_a_bad_reservation_id" {
  command = plan
  variables {
    reservation_id = "lease-today"
  }
  expect_failures = [var.reservation_id]
}

run "rejects_user_data_that_is_not_cloud_config" {
  command = plan
  variables {
    user_data = "#!/bin/sh\necho hi\n"
  }
  expect_failures = [var.user_data]
}

run "rejects_an_empty_image" {
  command = plan
  variables {
    image_name = ""
  }
  expect_failures = [var.image_name]
}

run "rejects_an_empty_key_pair" {
  command = plan
  variables {
    key_pair = " "
  }
  expect_failures = [var.key_pair]
}

run "rejects_bad_extra_group_keys" {
  command = plan
  variables {
    extra_security_group_ids = { first = ["sg"] }
  }
  expect_failures = [var.extra_security_group_ids]
}

run "rejects_a_bad_name" {
  command = plan
  variables {
    name = "-k8s"
  }
  expect_failures = [var.name]
}
