"""``hashmatch eval``: how well each perceptual hash matches edited copies of listed pictures.

A folder of images is split into listed and unrelated ones; the listed ones are loaded into a
hash list; every image goes through a suite of edits (:mod:`.edits`) and is hashed and matched
through the real path (in process, or a running server); the report (:mod:`.report`) and plots
(:mod:`.plots`) give recall per edit and false matches among the unrelated images at every
threshold. Run it as ``hashmatch eval FOLDER`` or ``python -m hashmatch.evaluate FOLDER``.
"""
