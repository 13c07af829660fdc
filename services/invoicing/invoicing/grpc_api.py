"""The invoicing service's gRPC edge. Its calls arrive with the invoicing issue."""

from timetracking.invoicing.v1 import invoicing_pb2_grpc


class InvoicingApi(invoicing_pb2_grpc.InvoicingServiceServicer):
    pass
