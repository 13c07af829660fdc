"""Request and response models of the REST API (pydantic), kept apart from the protos."""
