"""The scheduler process: retrains on cron, runs training jobs and hosts the service's
background loops and periodic jobs (`earshot scheduler`)."""
