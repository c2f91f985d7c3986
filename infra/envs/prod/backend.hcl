# Remote state for the prod environment: the container made by infra/envs/bootstrap, in Chameleon's object store.
bucket = "replayrec-tfstate"
key    = "prod/terraform.tfstate"
region = "us-east-1" # any value: the object store ignores it, the S3 client needs one

endpoints = {
  s3 = "https://chi.tacc.chameleoncloud.org:7480"
}

use_path_style              = true
use_lockfile                = true
skip_credentials_validation = true
skip_region_validation      = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_s3_checksum            = true
