# One persistent Cinder volume, attached to one instance unless attach is false. The volume outlives the
# instances: replacing or resizing a node pool never touches it; only a `destroy` of the whole environment does.

resource "openstack_blockstorage_volume_v3" "this" {
  name              = var.name
  description       = "replayrec persistent data: datasets, checkpoints, embeddings, cached results"
  size              = var.size_gb
  volume_type       = var.volume_type
  availability_zone = var.availability_zone
  metadata          = var.metadata
}

resource "openstack_compute_volume_attach_v2" "this" {
  count = var.attach ? 1 : 0

  instance_id = var.instance_id
  volume_id   = openstack_blockstorage_volume_v3.this.id
}
