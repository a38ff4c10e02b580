"""S3 datasets and results, and the AWS Batch infrastructure storm runs on."""
