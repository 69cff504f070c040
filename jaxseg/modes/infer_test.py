"""Output names of mode `infer`: one set of files per cloud, whatever the folder holds."""

from jaxseg.modes import infer


def test_clouds_sharing_a_name_keep_their_extension_and_others_do_not():
  stems = infer._output_stems(["room.npy", "room.ply", "office.txt", "Area_1/office_2"])
  assert stems == {"room.npy": "room_npy", "room.ply": "room_ply", "office.txt": "office",
                   "Area_1/office_2": "Area_1__office_2"}
  assert len(set(stems.values())) == len(stems)


def test_names_still_taken_after_the_extension_get_a_number():
  stems = infer._output_stems(["room.npy", "room.ply", "room_ply.txt", "a b.ply", "a:b.ply"])
  assert stems == {"room.npy": "room_npy", "room.ply": "room_ply", "room_ply.txt": "room_ply_2",
                   "a b.ply": "a__b", "a:b.ply": "a__b_2"}
