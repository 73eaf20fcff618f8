# Generated stubs (orchard_pb2, orchard_pb2_grpc, error_details_pb2) from
# proto/orchard/v1 by gen_stubs.sh; never edited by hand.
