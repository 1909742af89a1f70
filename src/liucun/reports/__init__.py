"""Reports: the monthly evaluation (KPIs against targets, changes, campaigns' lift, alerts,
recommended playbook adjustments) as data, HTML and PDF."""
