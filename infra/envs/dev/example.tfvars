# Copy to terraform.tfvars (git-ignored) and fill in. The addresses below are documentation ranges.
admin_cidrs    = ["203.0.113.0/24"]
ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampleEx operator@example"
