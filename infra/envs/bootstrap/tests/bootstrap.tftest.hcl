mock_provider "openstack" {}

run "creates_the_state_container_named_in_the_backends" {
  command = plan
  assert {
    condition     = output.bucket == "replayrec-tfstate"
    error_message = "the container matches bucket in envs/*/backend.hcl"
  }
}
