"""The learned fleet embedding (issues 14 and 15): training runs, versions, the
`fleet-v<N>` embedding kinds computed from stored audio (docs/fleet_embedding.md)."""
