# The dev environment as `replayrec infra plan --env dev` builds it, against mocked OpenStack sites.

mock_provider "openstack" {
  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["10.20.0.30"]
    }
  }
  mock_resource "openstack_networking_floatingip_v2" {
    defaults = {
      address = "129.114.27.50"
    }
  }
}

mock_provider "openstack" {
  alias = "gpu"
}

variables {
  admin_cidrs    = ["203.0.113.0/24"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyTestKeyTestKeyTestKeyTestKeyTestKey ci@replayrec"
}

run "plans_the_environment" {
  command = plan

  assert {
    condition     = [for n in output.nodes : n.role] == ["ingest", "processing", "serving"]
    error_message = "three Kubernetes nodes: ingest, processing, serving"
  }
  assert {
    condition     = output.data_volume.size_gb == 20
    error_message = "the dev volume is 20 GB"
  }
  assert {
    condition     = alltrue([for n in output.nodes : n.flavor == "m1.small"])
    error_message = "the dev nodes are m1.small"
  }
  assert {
    condition     = output.gpu_node == null
    error_message = "no GPU node outside a lease"
  }
}

run "applies_and_writes_an_inventory" {
  assert {
    condition     = length(output.ansible_inventory.all.hosts) == 3 && output.ansible_inventory.all.vars.replayrec_environment == "replayrec-dev"
    error_message = "the inventory holds the three nodes of replayrec-dev"
  }
  assert {
    condition     = keys(output.public_addresses) == ["admin", "api"]
    error_message = "two public addresses"
  }
}

run "a_gpu_lease_adds_the_training_node" {
  command = plan
  variables {
    gpu_reservation_id = "2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"
  }
  assert {
    condition     = [for n in output.nodes : n.role] == ["ingest", "processing", "serving", "training"]
    error_message = "the lease's reservation id brings the GPU node"
  }
}

run "rejects_ssh_from_anywhere" {
  command = plan
  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}
