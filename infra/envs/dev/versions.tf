terraform {
  required_version = ">= 1.9.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.4"
    }
  }

  # State lives in Chameleon's object store, through its S3 API (Terraform's own swift backend was removed in
  # 1.3). Partial configuration: the bucket, key and endpoint are in backend.hcl; the EC2-style credentials
  # come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from `openstack ec2 credentials
  # create`), never from this repository. `replayrec infra init --env dev` passes -backend-config=backend.hcl.
  backend "s3" {}
}
