package tui

// tabs lists the views in the order of the tab bar (keys 1-9). A view that
// does not exist yet is simply not listed.
func tabs() []View {
	return []View{
		newVMsView(),
		newImagesView(),
		newOperationsView(),
		newDoctorView(),
	}
}
