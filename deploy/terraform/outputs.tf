output "function_urn" {
  description = "URN of the function."
  value       = huaweicloud_fgs_function.cleanup.urn
}

output "function_name" {
  description = "Name of the function."
  value       = huaweicloud_fgs_function.cleanup.name
}

output "agency_name" {
  description = "The agency the function assumes."
  value       = huaweicloud_identity_agency.cleanup.name
}

output "agency_policies" {
  description = "The custom policies granted to the agency."
  value       = [for role in huaweicloud_identity_role.agency : role.name]
}

output "timer_trigger_id" {
  description = "ID of the timer trigger."
  value       = huaweicloud_fgs_function_trigger.timer.id
}

output "timer_status" {
  description = "ACTIVE when the timer runs the function, DISABLED when it does not."
  value       = huaweicloud_fgs_function_trigger.timer.status
}

output "dry_run" {
  description = "Whether the function only reports (MODELARTS_CLEANUP_DRY_RUN)."
  value       = var.dry_run
}
