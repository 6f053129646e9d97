terraform {
  # startswith() in a variable validation.
  required_version = ">= 1.3"

  required_providers {
    huaweicloud = {
      source = "huaweicloud/huaweicloud"
      # huaweicloud_fgs_function_trigger exists from 1.62.1 on; a new major version may rename
      # what this configuration uses.
      version = ">= 1.62.1, < 2.0.0"
    }
  }
}

# Credentials are never written here: the provider reads HW_ACCESS_KEY and HW_SECRET_KEY (and
# HW_SECURITY_TOKEN for temporary keys) from the environment of whoever runs terraform.
provider "huaweicloud" {
  region = var.region
}
