output "volume_id" {
  description = "ID of the volume."
  value       = openstack_blockstorage_volume_v3.this.id
}

output "size_gb" {
  description = "Size of the volume in GB."
  value       = openstack_blockstorage_volume_v3.this.size
}

output "device" {
  description = "Device path the volume is attached at (null when detached; Ansible mounts it)."
  value       = try(openstack_compute_volume_attach_v2.this[0].device, null)
}
