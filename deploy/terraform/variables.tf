# Every setting of the function has a variable here; the defaults are template.yaml's, so a
# deploy with either tool behaves the same. Only project_id has no default.

variable "region" {
  description = "Region of the function and of the ModelArts notebooks it cleans up (MODELARTS_CLEANUP_REGION)."
  type        = string
  default     = "cn-north-4"

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)*-[0-9]+$", var.region))
    error_message = "A region name such as cn-north-4."
  }
}

variable "project_id" {
  description = "The project (32 hex characters, IAM > My Credentials > Projects) whose notebooks the default rule cleans up, and, unless allowed_projects says otherwise, the only project the function may touch."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.project_id))
    error_message = "A project ID: 32 lowercase hex characters."
  }
}

variable "iam_project" {
  description = "Name of the IAM project in which the agency is granted its policies. Empty: the region's own project (its name is the region's)."
  type        = string
  default     = ""
}

variable "function_name" {
  description = "Name of the FunctionGraph function; also the prefix of the custom policies' names."
  type        = string
  default     = "modelarts-cleanup"
}

variable "agency_name" {
  description = "Name of the IAM agency FunctionGraph assumes to call ModelArts (the function's only credentials)."
  type        = string
  default     = "modelarts-cleanup"
}

variable "policies" {
  description = "Files of deploy/policies/ (without .json) the agency is granted. The default fits rules with a grace period. Named targets only: [\"base\"]; the old devenviron API: add \"devenviron\"; a digest to an SMN topic: add \"notify\"; a failure destination: add \"failure-destination-smn\" or \"failure-destination-obs\"."
  type        = list(string)
  default     = ["base", "selectors", "grace"]
}

variable "code_package" {
  description = "The zip `make package` writes, relative to this directory."
  type        = string
  default     = "../../dist/modelarts-cleanup-0.1.0.zip"
}

variable "runtime" {
  description = "FunctionGraph runtime. The package's compiled dependencies are built for CPython 3.10; for Python3.12 build with `python deploy/package.py --python-version 3.12`. Changing it replaces the function."
  type        = string
  default     = "Python3.10"

  validation {
    condition     = contains(["Python3.10", "Python3.12"], var.runtime)
    error_message = "Python3.10 or Python3.12."
  }
}

variable "memory_size" {
  description = "Memory of the function, in MB."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Seconds a run may take. The run stops starting deletions shortly before; what is left is reported as not_attempted and the next run picks it up."
  type        = number
  default     = 300
}

variable "timer_enabled" {
  description = "Whether the daily timer runs the function. Off by default: nothing runs on a schedule until someone decides it should. Setting it false again and applying is the emergency stop."
  type        = bool
  default     = false
}

variable "timer_name" {
  description = "Name of the timer trigger."
  type        = string
  default     = "modelarts-cleanup-daily"
}

variable "schedule" {
  description = "The timer's cron expression: six fields, seconds first, in the region's time zone (FunctionGraph's default; Beijing time, UTC+8, in cn-north-4). Default: every day at 02:00."
  type        = string
  default     = "0 0 2 * * ?"
}

variable "async_retries" {
  description = "Times FunctionGraph retries a failed asynchronous (timer) invocation, 0 to 3. Retries are safe: an instance already gone is already_absent."
  type        = number
  default     = 2
}

variable "async_max_event_age" {
  description = "Seconds an asynchronous invocation may wait before FunctionGraph drops it; keep it under the timer's period so a stale run does not overlap the next."
  type        = number
  default     = 3600
}

# --- The function's settings -------------------------------------------------------------------

variable "dry_run" {
  description = "MODELARTS_CLEANUP_DRY_RUN: report what would be deleted and delete nothing. Ships true: read a few reports in LTS, then set false. Setting it true again and applying stops every deletion, whatever the trigger."
  type        = bool
  default     = true
}

variable "selectors" {
  description = "MODELARTS_CLEANUP_SELECTORS: the rules a timer run applies, as a JSON list of selectors (`python -m modelarts_cleanup schema`). Empty: notebooks in project_id stopped and untouched for a week are marked, and deleted 48 hours later if still so."
  type        = string
  default     = ""
}

variable "targets" {
  description = "MODELARTS_CLEANUP_TARGETS: instances a timer run deletes by name. With no selectors and no targets, a timer run is an error."
  type = list(object({
    project_id  = string
    instance_id = string
  }))
  default = []
}

variable "project_regions" {
  description = "MODELARTS_CLEANUP_PROJECT_REGIONS: project ID -> region ID, for projects in other regions than var.region (known without asking IAM). Grant the agency its policies in each of those projects too."
  type        = map(string)
  default     = {}
}

variable "agency_projects" {
  description = "Other IAM projects (by name, e.g. cn-north-4_team for a subproject) in which the agency is granted its policies, besides the function's region and each region of project_regions."
  type        = list(string)
  default     = []
}

variable "endpoints" {
  description = "MODELARTS_CLEANUP_ENDPOINTS: region ID -> ModelArts base URL, over a region's own (regions on other domains). Empty: each region's public endpoint."
  type        = map(string)
  default     = {}
}

variable "iam_endpoint" {
  description = "MODELARTS_CLEANUP_IAM_ENDPOINT: IAM base URL, asked which region a project is in. Null: https://iam.myhuaweicloud.com."
  type        = string
  default     = null
}

variable "allowed_projects" {
  description = "MODELARTS_CLEANUP_ALLOWED_PROJECTS: the projects the function may touch, in any region (add those of project_regions). Empty: project_id only."
  type        = list(string)
  default     = []
}

variable "protected_instances" {
  description = "MODELARTS_CLEANUP_PROTECTED_INSTANCES: instance IDs never to delete, whatever a payload says."
  type        = list(string)
  default     = []
}

variable "protect_tags" {
  description = "MODELARTS_CLEANUP_PROTECT_TAGS: tags that keep a selected notebook (\"key\", \"key=value\", or a JSON list). Null: the function's default, modelarts-cleanup:keep. \"[]\" switches the guard off."
  type        = string
  default     = null
}

variable "confirm_seconds" {
  description = "MODELARTS_CLEANUP_CONFIRM_SECONDS: how long, at most, deleted notebooks are read again until gone (0-900); 0 switches it off."
  type        = number
  default     = 60
}

variable "over_cap" {
  description = "MODELARTS_CLEANUP_OVER_CAP: over max_deletions, refuse the whole run, or defer: do the first max_deletions (named first, then the longest idle) and leave the rest to later runs."
  type        = string
  default     = "refuse"
}

variable "fail_on" {
  description = "MODELARTS_CLEANUP_FAIL_ON: run statuses that end a timer or SMN invocation in a function error, so FunctionGraph's metrics, retries and failure destination see them. Empty: never."
  type        = list(string)
  default     = ["refused", "failed"]
}

variable "log_format" {
  description = "MODELARTS_CLEANUP_LOG_FORMAT: json (one object per line, what LTS indexes) or text (lines for people)."
  type        = string
  default     = "json"
}

variable "notify_topic" {
  description = "MODELARTS_CLEANUP_NOTIFY_TOPIC: an SMN topic URN (urn:smn:<region>:<project_id>:<name>) that receives a digest of each run; empty: none. Add \"notify\" to policies when set."
  type        = string
  default     = ""
}

variable "notify_on" {
  description = "MODELARTS_CLEANUP_NOTIFY_ON: when to publish the digest: changes, problems or always."
  type        = string
  default     = "changes"
}

variable "smn_endpoint" {
  description = "MODELARTS_CLEANUP_SMN_ENDPOINT: SMN base URL, overriding the topic's region's. Null: derived from the URN."
  type        = string
  default     = null
}

variable "api" {
  description = "MODELARTS_CLEANUP_API: notebook (current) or devenviron (the old /demanager/instances API; grant the devenviron policy too)."
  type        = string
  default     = "notebook"

  validation {
    condition     = contains(["notebook", "devenviron"], var.api)
    error_message = "notebook or devenviron."
  }
}

variable "list_scope" {
  description = "MODELARTS_CLEANUP_LIST_SCOPE: whose notebooks a rule lists: all (every user's) or own (the agency's own only)."
  type        = string
  default     = "all"

  validation {
    condition     = contains(["all", "own"], var.list_scope)
    error_message = "all or own."
  }
}

variable "max_deletions" {
  description = "MODELARTS_CLEANUP_MAX_DELETIONS: more deletions than this in one run and the whole run is refused."
  type        = number
  default     = 50
}

variable "concurrency" {
  description = "MODELARTS_CLEANUP_CONCURRENCY: ModelArts requests in flight at once (1 to 64)."
  type        = number
  default     = 8
}

variable "max_attempts" {
  description = "MODELARTS_CLEANUP_MAX_ATTEMPTS: attempts per request, the first included (1 to 10)."
  type        = number
  default     = 5
}

variable "connect_timeout" {
  description = "MODELARTS_CLEANUP_CONNECT_TIMEOUT: seconds to connect to ModelArts."
  type        = number
  default     = 5
}

variable "read_timeout" {
  description = "MODELARTS_CLEANUP_READ_TIMEOUT: seconds to wait for ModelArts' answer."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "MODELARTS_CLEANUP_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "DEBUG, INFO, WARNING or ERROR."
  }
}

variable "extra_settings" {
  description = "Further settings by their environment variable name, e.g. { MODELARTS_CLEANUP_ENDPOINT = \"https://...\" }. Never credentials: the agency supplies them."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name in keys(var.extra_settings) :
      startswith(name, "MODELARTS_CLEANUP_") && name != "MODELARTS_CLEANUP_AUTH_TOKEN"
    ])
    error_message = "Only MODELARTS_CLEANUP_ settings, and never MODELARTS_CLEANUP_AUTH_TOKEN."
  }
}
