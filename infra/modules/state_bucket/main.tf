# The object-store container the environments keep their state in (Chameleon's object store serves it over
# both the Swift and the S3 API; the environments' s3 backend reaches it through the S3 one).
# Versioning keeps every earlier state; force_destroy is off so a `destroy` never deletes state.

resource "openstack_objectstorage_container_v1" "this" {
  name          = var.name
  versioning    = true
  force_destroy = false
  metadata = {
    purpose = "terraform-state"
  }
}
