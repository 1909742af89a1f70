"""The operator's dashboard (docs/dashboard.md): server-rendered pages whose scripts read the
admin API and draw it with the vendored Apache ECharts; login by admin token."""
