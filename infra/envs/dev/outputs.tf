output "ansible_inventory" {
  description = "Ansible inventory object; replayrec infra inventory writes it to playbooks/inventories/<env>/hosts.yml."
  value       = module.replayrec.ansible_inventory
}

output "public_addresses" {
  description = "admin and api addresses."
  value       = module.replayrec.public_addresses
}

output "nodes" {
  description = "Every node with role and private address."
  value       = module.replayrec.nodes
}

output "gpu_node" {
  description = "The GPU node while a lease is active."
  value       = module.replayrec.gpu_node
}

output "data_volume" {
  description = "The persistent volume."
  value       = module.replayrec.data_volume
}
