mock_provider "openstack" {
  mock_resource "openstack_compute_volume_attach_v2" {
    defaults = {
      device = "/dev/vdb"
    }
  }
}

variables {
  name        = "replayrec-data"
  instance_id = "instance-1"
}

run "a_100_gb_volume_attached_to_the_instance" {
  command = plan

  assert {
    condition     = openstack_blockstorage_volume_v3.this.size == 100
    error_message = "the default volume is the seed's 100 GB"
  }
  assert {
    condition     = length(openstack_compute_volume_attach_v2.this) == 1 && openstack_compute_volume_attach_v2.this[0].instance_id == "instance-1"
    error_message = "the volume is attached to the given instance"
  }
}

run "detached_without_an_instance" {
  command = plan
  variables {
    attach      = false
    instance_id = null
    size_gb     = 20
  }
  assert {
    condition     = length(openstack_compute_volume_attach_v2.this) == 0 && openstack_blockstorage_volume_v3.this.size == 20
    error_message = "no attachment when attach is false"
  }
}

run "outputs_after_apply" {
  assert {
    condition     = output.device == "/dev/vdb" && output.size_gb == 100 && output.volume_id == openstack_blockstorage_volume_v3.this.id
    error_message = "device, size and id are reported"
  }
}

run "rejects_a_zero_size" {
  command = plan
  variables {
    size_gb = 0
  }
  expect_failures = [var.size_gb]
}

run "rejects_a_fractional_size" {
  command = plan
  variables {
    size_gb = 10.5
  }
  expect_failures = [var.size_gb]
}

run "rejects_a_bad_name" {
  command = plan
  variables {
    name = "data volume"
  }
  expect_failures = [var.name]
}

run "rejects_attach_without_an_instance" {
  command = plan
  variables {
    instance_id = null
  }
  expect_failures = [var.instance_id]
}
