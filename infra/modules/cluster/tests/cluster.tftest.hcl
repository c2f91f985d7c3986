# The whole footprint, planned and "applied" against mocked OpenStack sites (the Kubernetes site and the GPU site).

mock_provider "openstack" {
  mock_data "openstack_networking_network_v2" {
    defaults = {
      id = "e0e0e0e0-0000-4000-8000-000000000001"
    }
  }
  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["10.20.0.21"]
    }
  }
  mock_resource "openstack_compute_volume_attach_v2" {
    defaults = {
      device = "/dev/vdb"
    }
  }
}

mock_provider "openstack" {
  alias = "gpu"
  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["10.52.0.5"]
    }
  }
  mock_resource "openstack_networking_floatingip_v2" {
    defaults = {
      address = "129.114.108.9"
    }
  }
}

override_resource {
  target = module.public_ips.openstack_networking_floatingip_v2.this["admin"]
  values = {
    address = "129.114.27.1"
  }
}

override_resource {
  target = module.public_ips.openstack_networking_floatingip_v2.this["api"]
  values = {
    address = "129.114.27.2"
  }
}

variables {
  name           = "replayrec-test"
  admin_cidrs    = ["203.0.113.0/24"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyTestKeyTestKeyTestKeyTestKeyTestKey ci@replayrec"
}

run "the_seeds_footprint_without_a_lease" {
  command = plan

  assert {
    condition = (
      output.footprint.k8s_nodes == 3 && output.footprint.k8s_flavor == "m1.medium" &&
      output.footprint.k8s_roles == tolist(["ingest", "processing", "serving"]) && output.footprint.gpu_nodes == 0 &&
      output.footprint.volume_gb == 100 && output.footprint.floating_ips == tolist(["admin", "api"])
    )
    error_message = "3 m1.medium nodes (ingest, processing, serving), a 100 GB volume, admin and api addresses, no GPU node"
  }
  assert {
    condition     = length(output.security) == 4 && alltrue([for p in output.security : p.cidr == "203.0.113.0/24" if contains([22, 6443], p.port)])
    error_message = "SSH and the Kubernetes API only from the admin CIDR; HTTP and HTTPS on the ingress group"
  }
}

run "inventory_after_apply_without_a_lease" {
  assert {
    condition     = output.public_addresses == { admin = "129.114.27.1", api = "129.114.27.2" }
    error_message = "admin and api addresses"
  }
  assert {
    condition     = output.ansible_inventory.all.hosts["replayrec-test-k8s-0"].ansible_host == "129.114.27.1"
    error_message = "the control-plane node is reached on the admin address"
  }
  assert {
    condition     = output.ansible_inventory.all.hosts["replayrec-test-k8s-1"].ansible_host == "10.20.0.21" && strcontains(output.ansible_inventory.all.hosts["replayrec-test-k8s-1"].ansible_ssh_common_args, "ProxyJump=cc@129.114.27.1")
    error_message = "the other nodes are reached on their private address through the admin node"
  }
  assert {
    condition     = keys(output.ansible_inventory.all.children.k8s_control_plane.hosts) == ["replayrec-test-k8s-0"] && keys(output.ansible_inventory.all.children.ingress.hosts) == ["replayrec-test-k8s-2"]
    error_message = "control plane on node 0, ingress (api address) on the serving node"
  }
  assert {
    condition     = keys(output.ansible_inventory.all.children.storage.hosts) == ["replayrec-test-k8s-1"] && output.ansible_inventory.all.vars.data_volume_device == "/dev/vdb"
    error_message = "the volume is on the processing node, with its device path for the mount"
  }
  assert {
    condition     = length(output.ansible_inventory.all.children.gpu.hosts) == 0 && output.gpu_node == null
    error_message = "no GPU host without a lease"
  }
  assert {
    condition     = output.ansible_inventory.all.vars.kubernetes_api_endpoint == "https://129.114.27.1:6443"
    error_message = "the Kubernetes API endpoint is on the admin address"
  }
}

run "a_lease_adds_the_reserved_gpu_node_on_its_site" {
  variables {
    gpu_reservation_id = "2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"
  }

  assert {
    condition     = output.footprint.gpu_nodes == 1 && [for n in output.nodes : n.reservation if n.role == "training"] == ["2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"]
    error_message = "one GPU node scheduled into the reservation"
  }
  assert {
    condition     = output.gpu_node == { name = "replayrec-test-gpu-0", address = "129.114.108.9" }
    error_message = "the GPU node is reached on its own site's floating IP"
  }
  assert {
    condition     = keys(output.ansible_inventory.all.children.gpu.hosts) == ["replayrec-test-gpu-0"] && output.ansible_inventory.all.hosts["replayrec-test-gpu-0"].node_role == "training"
    error_message = "the GPU node is in the gpu group with the training role"
  }
  assert {
    condition     = length(output.public_addresses) == 2 && output.footprint.floating_ips == tolist(["admin", "api", "gpu"])
    error_message = "the lease adds the GPU site's address and leaves the project's two addresses alone"
  }
}

run "rejects_a_single_node_cluster" {
  command = plan
  variables {
    k8s_node_count = 1
  }
  expect_failures = [var.k8s_node_count]
}

run "rejects_a_volume_on_a_missing_node" {
  command = plan
  variables {
    storage_node_index = 3
  }
  expect_failures = [var.storage_node_index]
}

run "rejects_a_private_key_or_garbage_as_public_key" {
  command = plan
  variables {
    ssh_public_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
  }
  expect_failures = [var.ssh_public_key]
}

run "rejects_a_bad_environment_name" {
  command = plan
  variables {
    name = "Prod"
  }
  expect_failures = [var.name]
}
