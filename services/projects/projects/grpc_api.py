"""The projects service's gRPC edge. Its calls arrive with the projects issue."""

from timetracking.projects.v1 import projects_pb2_grpc


class ProjectsApi(projects_pb2_grpc.ProjectsServiceServicer):
    pass
