"""advocacy over HTTP: the JSON API (`casework_api`, `continuity_api`, their `schemas`, and `records`, the
shapes both it and the page show), and the advocate's page (`page`, with `auth`, `caseload`, `labels`)."""
