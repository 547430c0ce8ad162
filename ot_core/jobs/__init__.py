"""Jobs: notebooks executed by papermill, whose executed copies are the audit records."""
