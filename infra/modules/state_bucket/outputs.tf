output "name" {
  description = "Container (bucket) name for the environments' backend configuration."
  value       = openstack_objectstorage_container_v1.this.name
}
