locals {
  iam_project = var.iam_project != "" ? var.iam_project : var.region
  # The agency holds its policies in every project the function may reach: its own region's,
  # each region project_regions names, and any other project (a subproject) given by name.
  agency_projects = distinct(concat([local.iam_project], values(var.project_regions), var.agency_projects))

  # The policy files of deploy/policies/ an agency can hold, each with its scope: XA for
  # project-level services, AX for global ones (OBS). deny-delete-protected.json is not among
  # them: it guards protect tags for the identities people use, not the agency.
  policy_dir = "${path.module}/../policies"
  policy_scopes = {
    "base"                    = "XA"
    "selectors"               = "XA"
    "grace"                   = "XA"
    "devenviron"              = "XA"
    "failure-destination-smn" = "XA"
    "failure-destination-obs" = "AX"
  }

  default_selectors = [{
    project_id  = var.project_id
    statuses    = ["STOPPED"]
    idle_hours  = 168
    grace_hours = 48
  }]

  # The function's settings, as template.yaml sets them. Credentials are not among them.
  settings = {
    MODELARTS_CLEANUP_REGION              = var.region
    MODELARTS_CLEANUP_ALLOW_HTTP          = "false"
    MODELARTS_CLEANUP_API                 = var.api
    MODELARTS_CLEANUP_DRY_RUN             = tostring(var.dry_run)
    MODELARTS_CLEANUP_SELECTORS           = var.selectors != "" ? var.selectors : jsonencode(local.default_selectors)
    MODELARTS_CLEANUP_TARGETS             = jsonencode(var.targets)
    MODELARTS_CLEANUP_ALLOWED_PROJECTS    = jsonencode(length(var.allowed_projects) > 0 ? var.allowed_projects : [var.project_id])
    MODELARTS_CLEANUP_PROTECTED_INSTANCES = jsonencode(var.protected_instances)
    MODELARTS_CLEANUP_MAX_DELETIONS       = tostring(var.max_deletions)
    MODELARTS_CLEANUP_OVER_CAP            = var.over_cap
    MODELARTS_CLEANUP_FAIL_ON             = join(",", var.fail_on)
    MODELARTS_CLEANUP_CONCURRENCY         = tostring(var.concurrency)
    MODELARTS_CLEANUP_MAX_ATTEMPTS        = tostring(var.max_attempts)
    MODELARTS_CLEANUP_CONNECT_TIMEOUT     = tostring(var.connect_timeout)
    MODELARTS_CLEANUP_READ_TIMEOUT        = tostring(var.read_timeout)
    MODELARTS_CLEANUP_LOG_LEVEL           = var.log_level
    MODELARTS_CLEANUP_LOG_FORMAT          = var.log_format
    MODELARTS_CLEANUP_LIST_SCOPE          = var.list_scope
    MODELARTS_CLEANUP_NOTIFY_TOPIC        = var.notify_topic
    MODELARTS_CLEANUP_NOTIFY_ON           = var.notify_on
    MODELARTS_CLEANUP_PROJECT_REGIONS     = jsonencode(var.project_regions)
    MODELARTS_CLEANUP_CONFIRM_SECONDS     = tostring(var.confirm_seconds)
  }
  # Set only when given: unset, the function uses its own default.
  optional_settings = {
    MODELARTS_CLEANUP_PROTECT_TAGS = var.protect_tags
    MODELARTS_CLEANUP_SMN_ENDPOINT = var.smn_endpoint
    MODELARTS_CLEANUP_ENDPOINTS    = length(var.endpoints) > 0 ? jsonencode(var.endpoints) : null
    MODELARTS_CLEANUP_IAM_ENDPOINT = var.iam_endpoint
  }
  function_settings = merge(
    local.settings,
    { for name, value in local.optional_settings : name => value if value != null },
    var.extra_settings,
  )

  # Empty user_event: a timer run applies the settings above, which `terraform apply` updates.
  timer_event = {
    name          = var.timer_name
    schedule_type = "Cron"
    schedule      = var.schedule
    user_event    = ""
  }
}

# One custom policy per file the agency needs, its JSON exactly the file's.
resource "huaweicloud_identity_role" "agency" {
  for_each = toset(var.policies)

  name        = "${var.function_name}-${each.key}"
  description = "${var.function_name}: deploy/policies/${each.key}.json"
  type        = local.policy_scopes[each.key]
  policy      = jsonencode(jsondecode(file("${local.policy_dir}/${each.key}.json")))
}

# The agency FunctionGraph (cloud service op_svc_cff) assumes: the function signs its ModelArts
# requests with the agency's temporary keys, so no key is stored anywhere.
resource "huaweicloud_identity_agency" "cleanup" {
  name                   = var.agency_name
  description            = "Assumed by FunctionGraph function ${var.function_name} to clean up ModelArts notebooks."
  delegated_service_name = "op_svc_cff"
  duration               = "FOREVER"

  dynamic "project_role" {
    for_each = local.agency_projects
    content {
      project = project_role.value
      roles   = [for name, role in huaweicloud_identity_role.agency : role.name if role.type == "XA"]
    }
  }

  domain_roles = [for name, role in huaweicloud_identity_role.agency : role.name if role.type == "AX"]
}

resource "huaweicloud_fgs_function" "cleanup" {
  name        = var.function_name
  app         = "default"
  description = "Deletes the ModelArts notebook instances its rules pick or its payload names; one JSON log line per instance."
  runtime     = var.runtime
  handler     = "handler.handler"
  memory_size = var.memory_size
  timeout     = var.timeout
  agency      = huaweicloud_identity_agency.cleanup.name

  code_type     = "zip"
  code_filename = basename(var.code_package)
  func_code     = filebase64(var.code_package)

  user_data = jsonencode(local.function_settings)
}

resource "huaweicloud_fgs_function_trigger" "timer" {
  function_urn = huaweicloud_fgs_function.cleanup.urn
  type         = "TIMER"
  status       = var.timer_enabled ? "ACTIVE" : "DISABLED"
  event_data   = jsonencode(local.timer_event)
}

resource "huaweicloud_fgs_async_invoke_configuration" "cleanup" {
  function_urn                   = huaweicloud_fgs_function.cleanup.urn
  max_async_retry_attempts       = var.async_retries
  max_async_event_age_in_seconds = var.async_max_event_age
}
