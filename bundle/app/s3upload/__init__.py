"""s3upload: the upload service for books and images that cdpoc deploys with CodeDeploy.

The API stores uploaded files in S3 (bucket and prefix chosen per file type) and keeps a record of
each one in MongoDB. File types and CORS origins are data in MongoDB, seeded when the database
instance is built, so the application code holds no environment-specific names.

Modules:
    settings   configuration read from the environment (written by the AfterInstall hook)
    services   the outside world: MongoDB client, S3 client, the password from SSM
    uploads    pure validation of an upload against its file type
    cors       CORS whose allowed origins come from the ``origins`` collection
    api        the FastAPI application and its routes
    __main__   ``python -m s3upload``: logging, then uvicorn
"""
