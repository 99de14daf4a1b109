"""django-q2 cluster configuration: Redis broker when REDIS_URL or REDIS_HOST is set, otherwise
the ORM broker on the database (the zero-setup default)."""


def q_cluster_settings(redis_url, redis_host, redis_port, redis_db, redis_password):
    config = {
        "name": "bagtracker",
        "workers": 2,
        # Snapshot and recalculation jobs can run for minutes on a large fleet.
        "timeout": 1800,
        # Must exceed timeout, or the ORM broker re-delivers a task that is still running.
        "retry": 2100,
        "max_attempts": 3,
        "save_limit": 1000,
        "catch_up": False,
        "label": "Django Q2",
    }
    if redis_url:
        config["redis"] = redis_url
    elif redis_host:
        config["redis"] = {"host": redis_host, "port": redis_port, "db": redis_db, "password": redis_password}
    else:
        config["orm"] = "default"
    return config
