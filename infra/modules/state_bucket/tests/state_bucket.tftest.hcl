mock_provider "openstack" {}

run "a_versioned_container_that_destroy_keeps" {
  command = plan
  variables {
    name = "replayrec-tfstate"
  }
  assert {
    condition     = openstack_objectstorage_container_v1.this.versioning == true && openstack_objectstorage_container_v1.this.force_destroy == false
    error_message = "state is versioned and never force-destroyed"
  }
}

run "rejects_a_bad_bucket_name" {
  command = plan
  variables {
    name = "Replayrec_TFState"
  }
  expect_failures = [var.name]
}
